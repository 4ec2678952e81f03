//! `tessera-qemu-runner IMAGE [QEMU-ARGS…]`: boots a tessera QEMU `virt` image and prints
//! its defmt log, decoded with `defmt-decoder` from the UART bytes; exits with the image's
//! exit status (semihosting on aarch64, `sifive_test` on riscv64). The cargo runner of
//! `qemu/` and the driver `cargo xtask qemu` both use it.
//!
//! The machine is chosen from the ELF header. Every run uses `-icount shift=0`: one
//! instruction is one nanosecond of virtual time, so the images' instruction counters are
//! exact and every run is deterministic. `TESSERA_QEMU_TIMEOUT` (seconds, default 600)
//! bounds a run.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use defmt_decoder::{DecodeError, Table};

const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

fn qemu_command(machine: u16, image: &str) -> Result<Command, String> {
    let mut cmd = match machine {
        EM_AARCH64 => {
            let mut c = Command::new("qemu-system-aarch64");
            c.args(["-machine", "virt", "-cpu", "cortex-a57", "-semihosting-config", "enable=on,target=native"]);
            c
        }
        EM_RISCV => {
            let mut c = Command::new("qemu-system-riscv64");
            c.args(["-machine", "virt", "-bios", "none"]);
            c
        }
        other => return Err(format!("{image}: ELF machine {other} is neither aarch64 nor riscv64")),
    };
    cmd.args(["-m", "128M", "-smp", "1", "-icount", "shift=0", "-display", "none", "-monitor", "none", "-nic", "none"]);
    cmd.args(["-serial", "stdio", "-no-reboot", "-kernel", image]);
    Ok(cmd)
}

fn elf_machine(elf: &[u8]) -> Option<u16> {
    (elf.get(..4)? == b"\x7fELF").then(|| u16::from_le_bytes([elf[18], elf[19]]))
}

/// A copy of `elf` whose `.defmt` symbols have the value the image sends for them: their
/// address truncated to 16 bits. The riscv64 image places them at 0x7fff_0000 + index
/// (qemu/firmware/link/riscv64.x); elsewhere they are already below 0x10000.
fn defmt_indices_as_addresses(elf: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "malformed ELF section table".to_string();
    let read = |at: usize, n: usize| -> Result<u64, String> {
        let bytes = elf.get(at..at + n).ok_or_else(bad)?;
        Ok(bytes.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    };
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let (shoff, shentsize, shnum) = (read(0x28, 8)? as usize, read(0x3a, 2)? as usize, read(0x3c, 2)? as usize);
    let shstrndx = read(0x3e, 2)? as usize;
    let section = |i: usize| shoff + i * shentsize;
    let names_at = read(section(shstrndx) + 24, 8)? as usize;
    let name_of = |i: usize| -> Result<&[u8], String> {
        let start = names_at + read(section(i), 4)? as usize;
        let tail = elf.get(start..).ok_or_else(bad)?;
        Ok(&tail[..tail.iter().position(|&b| b == 0).ok_or_else(bad)?])
    };
    let mut defmt_index = None;
    for i in 0..shnum {
        if name_of(i)? == b".defmt" {
            defmt_index = Some(i as u64);
        }
    }
    let mut out = elf.to_vec();
    let Some(defmt_index) = defmt_index else { return Ok(out) };
    for i in 0..shnum {
        const SHT_SYMTAB: u64 = 2;
        if read(section(i) + 4, 4)? != SHT_SYMTAB {
            continue;
        }
        let (offset, size) = (read(section(i) + 24, 8)? as usize, read(section(i) + 32, 8)? as usize);
        const SYMBOL_SIZE: usize = 24;
        for sym in (offset..offset + size).step_by(SYMBOL_SIZE) {
            if read(sym + 6, 2)? == defmt_index {
                let value = read(sym + 8, 8)? & 0xffff;
                out[sym + 8..sym + 16].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(image) = args.next() else {
        eprintln!("usage: tessera-qemu-runner IMAGE [QEMU-ARGS...]");
        return ExitCode::from(2);
    };
    match run(&image, args.collect()) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("tessera-qemu-runner: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(image: &str, extra: Vec<String>) -> Result<u8, String> {
    let elf = std::fs::read(image).map_err(|e| format!("cannot read {image}: {e}"))?;
    let machine = elf_machine(&elf).ok_or_else(|| format!("{image} is not an ELF file"))?;
    let table = Table::parse(&defmt_indices_as_addresses(&elf)?)
        .map_err(|e| format!("{image}: bad defmt data: {e}"))?
        .ok_or_else(|| format!("{image} has no defmt data (.defmt section)"))?;
    let timeout = std::env::var("TESSERA_QEMU_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(600));

    let mut cmd = qemu_command(machine, image)?;
    cmd.args(&extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let line: Vec<String> =
        std::iter::once(program.clone()).chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned())).collect();
    eprintln!("tessera-qemu-runner: {}", line.join(" "));
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {program}: {e} (is QEMU installed?)"))?;

    // The UART bytes arrive on a thread, so the main thread can enforce the timeout.
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let mut decoder = table.new_stream_decoder();
    let deadline = Instant::now() + timeout;
    let mut malformed = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s; QEMU killed", timeout.as_secs()));
        }
        match rx.recv_timeout(deadline - now) {
            Ok(bytes) => {
                decoder.received(&bytes);
                loop {
                    match decoder.decode() {
                        Ok(frame) => {
                            let level = frame.level().map(|l| format!("{} ", l.as_str().to_uppercase()));
                            println!("{}{}", level.unwrap_or_default(), frame.display_message());
                        }
                        Err(DecodeError::UnexpectedEof) => break,
                        Err(DecodeError::Malformed) => {
                            malformed += 1;
                            eprintln!("tessera-qemu-runner: malformed defmt frame skipped");
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = reader.join();
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    let code = status.code().ok_or_else(|| format!("QEMU ended by a signal ({status})"))?;
    if malformed > 0 {
        eprintln!("tessera-qemu-runner: {malformed} malformed frame(s)");
    }
    eprintln!("tessera-qemu-runner: exit status {code}");
    Ok(u8::try_from(code).unwrap_or(1))
}
