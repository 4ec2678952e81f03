//! Running a command for another ISA: the same command line, run by the `tessera` binary
//! built for that ISA's Linux target, under qemu-user.
//!
//! The binary is `$TESSERA_BIN_<ARCH>` when that is set (`TESSERA_BIN_AARCH64`,
//! `TESSERA_BIN_RISCV64`, `TESSERA_BIN_X86_64`), else `<target dir>/<triple>/{release,debug}/
//! tessera`, where the target dir is the one the running binary was built in. qemu-user is
//! `qemu-<arch>` (or `qemu-<arch>-static`) on `PATH`, with the cross libc in
//! `/usr/<arch>-linux-gnu`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use tessera::Isa;

/// How to run Linux binaries of one ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub isa: Isa,
    /// The Rust target triple.
    pub triple: &'static str,
    /// The qemu-user binary and Debian's architecture name in package names.
    pub qemu: &'static str,
    pub debian_arch: &'static str,
    /// The cross libc qemu-user loads the binary's interpreter and libraries from.
    pub sysroot: &'static str,
    /// The variable naming the binary explicitly.
    pub env: &'static str,
    /// The C cross compiler (the linker cargo is configured with).
    pub gcc: &'static str,
}

pub const TARGETS: [Target; 3] = [
    Target {
        isa: Isa::X86_64,
        triple: "x86_64-unknown-linux-gnu",
        qemu: "qemu-x86_64",
        debian_arch: "amd64",
        sysroot: "/usr/x86_64-linux-gnu",
        env: "TESSERA_BIN_X86_64",
        gcc: "gcc-x86-64-linux-gnu",
    },
    Target {
        isa: Isa::Aarch64,
        triple: "aarch64-unknown-linux-gnu",
        qemu: "qemu-aarch64",
        debian_arch: "arm64",
        sysroot: "/usr/aarch64-linux-gnu",
        env: "TESSERA_BIN_AARCH64",
        gcc: "gcc-aarch64-linux-gnu",
    },
    Target {
        isa: Isa::Riscv64,
        triple: "riscv64gc-unknown-linux-gnu",
        qemu: "qemu-riscv64",
        debian_arch: "riscv64",
        sysroot: "/usr/riscv64-linux-gnu",
        env: "TESSERA_BIN_RISCV64",
        gcc: "gcc-riscv64-linux-gnu",
    },
];

impl Target {
    pub fn of(isa: Isa) -> Option<&'static Target> {
        TARGETS.iter().find(|t| t.isa == isa)
    }
}

/// Why a command cannot run for another ISA.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// qemu-user for the ISA, or the cross libc it needs.
    Qemu(String),
    /// The `tessera` binary built for the ISA.
    Binary(String),
}

/// `name` on `PATH`, if there is an executable file of that name.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The qemu-user binary for `t`, checked to be there with its sysroot.
pub fn find_qemu(t: &Target) -> Result<PathBuf, Missing> {
    let qemu = on_path(t.qemu).or_else(|| on_path(&format!("{}-static", t.qemu))).ok_or_else(|| {
        Missing::Qemu(format!(
            "{} not found on PATH, needed to run {} code: install qemu-user (`apt-get install qemu-user`)",
            t.qemu,
            t.isa.name()
        ))
    })?;
    if !Path::new(t.sysroot).is_dir() {
        return Err(Missing::Qemu(format!(
            "{} (the {} C library qemu-user loads) is missing: `apt-get install libc6-{}-cross`",
            t.sysroot,
            t.isa.name(),
            t.debian_arch
        )));
    }
    Ok(qemu)
}

/// Target directories the running binary may have been built in: the directory above its
/// profile directory (`<dir>/debug/tessera`), or above the triple (`<dir>/<triple>/debug/
/// tessera`).
fn target_dirs(exe: &Path) -> Vec<PathBuf> {
    let Some(above_profile) = exe.parent().and_then(Path::parent) else { return Vec::new() };
    let mut dirs = vec![above_profile.to_path_buf()];
    if TARGETS.iter().any(|t| above_profile.ends_with(t.triple))
        && let Some(dir) = above_profile.parent()
    {
        dirs.insert(0, dir.to_path_buf());
    }
    dirs
}

/// The `tessera` binary built for `t`: `$TESSERA_BIN_<ARCH>` if set, else the one in the
/// running binary's target directory, same profile first.
pub fn find_binary(t: &Target) -> Result<PathBuf, Missing> {
    find_binary_for(t, &std::env::current_exe().unwrap_or_default())
}

/// [`find_binary`] as the `tessera` binary `exe` would look.
pub fn find_binary_for(t: &Target, exe: &Path) -> Result<PathBuf, Missing> {
    let build = format!(
        "build it with `rustup target add {triple} && apt-get install {gcc} && cargo build -p tessera-cli --target {triple}` (or set {env})",
        triple = t.triple,
        gcc = t.gcc,
        env = t.env,
    );
    if let Some(path) = std::env::var_os(t.env) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Missing::Binary(format!("{}={} is not a file: {build}", t.env, path.display())))
        };
    }
    built_next_to(t, exe).map_err(|looked| {
        let looked = looked.map_or_else(String::new, |p| format!(" (looked for {})", p.display()));
        Missing::Binary(format!("no tessera built for {}{looked}: {build}", t.triple))
    })
}

/// The `tessera` built for `t` in the target directory `exe` (a `tessera` binary) was built
/// in, the same profile first; else the first place looked at, if any.
pub fn built_next_to(t: &Target, exe: &Path) -> Result<PathBuf, Option<PathBuf>> {
    let profile = exe.parent().and_then(Path::file_name).map(|p| p.to_string_lossy().into_owned());
    let mut profiles = ["release", "debug"];
    if profile.as_deref() == Some("debug") {
        profiles.reverse();
    }
    let candidates: Vec<PathBuf> = target_dirs(exe)
        .into_iter()
        .flat_map(|dir| profiles.map(|p| dir.join(t.triple).join(p).join("tessera")))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| candidates.first().cloned())
}

/// Runs `args` (this process's command line, without the program name) with the `tessera`
/// built for `t` under qemu-user; returns its exit code (its output goes straight through).
pub fn rerun(t: &Target, args: &[OsString]) -> Result<Result<i32, String>, Missing> {
    let qemu = find_qemu(t)?;
    let binary = find_binary(t)?;
    let status = Command::new(&qemu).arg("-L").arg(t.sysroot).arg(&binary).args(args).status();
    Ok(match status {
        Ok(status) => {
            status.code().ok_or_else(|| format!("{} under {} was killed ({status})", binary.display(), t.qemu))
        }
        Err(e) => Err(format!("{}: {e}", qemu.display())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dirs_of_host_and_cross_binaries() {
        assert_eq!(target_dirs(Path::new("/t/debug/tessera")), [PathBuf::from("/t")]);
        assert_eq!(
            target_dirs(Path::new("/t/aarch64-unknown-linux-gnu/release/tessera")),
            [PathBuf::from("/t"), PathBuf::from("/t/aarch64-unknown-linux-gnu")]
        );
    }

    #[test]
    fn every_isa_has_a_target() {
        for isa in Isa::ALL {
            assert_eq!(Target::of(isa).map(|t| t.isa), Some(isa));
            assert!(Target::of(isa).unwrap().triple.contains("-linux-gnu"));
        }
    }
}
