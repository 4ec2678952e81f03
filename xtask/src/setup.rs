//! `cargo xtask setup`: make sure the Rust targets/components from `rust-toolchain.toml`
//! and the Debian packages for the host tier (clang, for the benchmark suite's native
//! baseline) and the cross tiers are installed.

use std::path::Path;
use std::process::Command;

use crate::toolchain_file::ToolchainFile;
use crate::util::{command_line, find_in_path, run_status};

/// A Debian package a tier needs, with what proves it is usable without dpkg.
pub struct AptPackage {
    pub name: &'static str,
    /// Executables that must be on `PATH`.
    pub commands: &'static [&'static str],
    /// Files that must exist.
    pub files: &'static [&'static str],
}

/// Packages the host tier needs: the benchmark crate builds its native baseline with clang,
/// and the workspace's tests and lints build every crate; the lint tier checks the
/// cargo-fuzz targets, whose `libfuzzer-sys` compiles libFuzzer's C++.
const HOST_APT_PACKAGES: &[&AptPackage] = &[&crate::bench::CLANG, &CXX];

const CXX: AptPackage = AptPackage { name: "g++", commands: &["g++"], files: &[] };

/// Packages the cross tiers need.
const CROSS_APT_PACKAGES: &[AptPackage] = &[
    AptPackage { name: "qemu-user", commands: &["qemu-aarch64", "qemu-riscv64"], files: &[] },
    AptPackage { name: "gcc-aarch64-linux-gnu", commands: &["aarch64-linux-gnu-gcc"], files: &[] },
    AptPackage { name: "gcc-riscv64-linux-gnu", commands: &["riscv64-linux-gnu-gcc"], files: &[] },
    AptPackage {
        name: "libc6-dev-arm64-cross",
        commands: &[],
        files: &["/usr/aarch64-linux-gnu/lib/crt1.o", "/usr/aarch64-linux-gnu/lib/libc.so.6"],
    },
    AptPackage {
        name: "libc6-dev-riscv64-cross",
        commands: &[],
        files: &["/usr/riscv64-linux-gnu/lib/crt1.o", "/usr/riscv64-linux-gnu/lib/libc.so.6"],
    },
    // llvm-objdump: the golden-emission tests compare disassembly when it is installed; the
    // others build the bare-metal benches and measure the images (qemu tier, `xtask size`).
    AptPackage {
        name: "llvm",
        commands: &["llvm-objdump", "llvm-ar", "llvm-objcopy", "llvm-readelf", "llvm-size", "llvm-nm"],
        files: &[],
    },
    // The qemu-system tier: the bare-metal images, and the bench kernels in C.
    AptPackage { name: "qemu-system-arm", commands: &["qemu-system-aarch64"], files: &[] },
    AptPackage { name: "qemu-system-misc", commands: &["qemu-system-riscv64"], files: &[] },
    AptPackage { name: "clang", commands: &["clang"], files: &[] },
    // The qemu-system tier's x86-64 column: host instructions counted by callgrind.
    crate::qemu::VALGRIND,
];

/// qemu-system from Debian needs qemu-utils of its own version: a newer qemu-utils (e.g.
/// from backports) breaks it, so the install pins qemu-utils to qemu-system's candidate.
fn qemu_utils_pin(missing: &[&str]) -> Option<String> {
    if !missing.iter().any(|p| p.starts_with("qemu-system")) || !dpkg_installed("qemu-utils") {
        return None;
    }
    let out = Command::new("apt-cache").args(["policy", "qemu-system-arm"]).output().ok()?;
    let candidate = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:").map(|v| v.trim().to_string()))
        .filter(|v| v != "(none)")?;
    let installed = Command::new("dpkg-query").args(["-W", "-f=${Version}", "qemu-utils"]).output().ok()?;
    (String::from_utf8_lossy(&installed.stdout).trim() != candidate).then(|| format!("qemu-utils={candidate}"))
}

/// What `setup` managed to ensure; the test driver skips tiers whose prerequisites failed.
#[derive(Debug)]
pub struct SetupOutcome {
    /// Errors from the Rust part (targets/components), if any.
    pub rust: Result<(), String>,
    /// Errors from the Debian part, if any. `Ok` when skipped on purpose.
    pub apt: Result<(), String>,
}

impl SetupOutcome {
    pub fn error(&self) -> Option<String> {
        let errs: Vec<&str> =
            [&self.rust, &self.apt].into_iter().filter_map(|r| r.as_ref().err().map(String::as_str)).collect();
        (!errs.is_empty()).then(|| errs.join("; "))
    }
}

/// `host_only`: only what the host tiers need (no cross targets, no cross packages).
pub fn setup(root: &Path, host_only: bool) -> SetupOutcome {
    let rust = ensure_rust(root, host_only);
    if let Err(e) = &rust {
        println!("setup: ERROR: {e}");
    }
    let mut packages: Vec<&AptPackage> = HOST_APT_PACKAGES.to_vec();
    if host_only {
        println!("setup: --host-only: not checking cross targets or cross-tier Debian packages");
    } else {
        packages.extend(CROSS_APT_PACKAGES);
    }
    let apt = ensure_apt(&packages);
    if let Err(e) = &apt {
        println!("setup: ERROR: {e}");
    }
    SetupOutcome { rust, apt }
}

fn ensure_rust(root: &Path, host_only: bool) -> Result<(), String> {
    let tf = ToolchainFile::read(&root.join("rust-toolchain.toml"))?;
    if find_in_path("rustup").is_none() {
        return Err(format!(
            "rustup not found on PATH; install rustup (https://rustup.rs) or install the \
             components {:?} and targets {:?} by other means",
            tf.components, tf.targets
        ));
    }
    let toolchain = active_toolchain(root, tf.channel.as_deref())?;

    let installed_components = rustup_list(root, &["component", "list", "--installed", "--toolchain", &toolchain])?;
    // `rustup component list --installed` prints `clippy-x86_64-unknown-linux-gnu`, or the
    // bare name for some components; match either.
    let missing_components: Vec<&String> = tf
        .components
        .iter()
        .filter(|c| !installed_components.iter().any(|i| i == *c || i.starts_with(&format!("{c}-"))))
        .collect();
    install_with_rustup(root, &toolchain, "component", &missing_components, &tf.components)?;

    if host_only {
        return Ok(());
    }
    let installed_targets = rustup_list(root, &["target", "list", "--installed", "--toolchain", &toolchain])?;
    let missing_targets: Vec<&String> = tf.targets.iter().filter(|t| !installed_targets.contains(t)).collect();
    install_with_rustup(root, &toolchain, "target", &missing_targets, &tf.targets)
}

fn install_with_rustup(
    root: &Path,
    toolchain: &str,
    kind: &str,
    missing: &[&String],
    all: &[String],
) -> Result<(), String> {
    if missing.is_empty() {
        println!("setup: Rust {kind}s already installed for {toolchain}: {}", all.join(" "));
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    println!("setup: installing Rust {kind}s for {toolchain}: {}", names.join(" "));
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root).args([kind, "add", "--toolchain", toolchain]).args(&names);
    match run_status(&mut cmd) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("`{}` failed", command_line(&cmd))),
        Err(e) => Err(e),
    }
}

/// The toolchain cargo is running under (`RUSTUP_TOOLCHAIN` when invoked through the
/// rustup proxy, else what `rustup show active-toolchain` reports for the repo).
fn active_toolchain(root: &Path, channel: Option<&str>) -> Result<String, String> {
    if let Ok(t) = std::env::var("RUSTUP_TOOLCHAIN")
        && !t.is_empty()
    {
        return Ok(t);
    }
    let out = Command::new("rustup")
        .current_dir(root)
        .args(["show", "active-toolchain"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.split_whitespace().next() {
        Some(name) if out.status.success() => Ok(name.to_string()),
        _ => channel.map(str::to_string).ok_or_else(|| {
            format!("cannot determine the active toolchain: {}", String::from_utf8_lossy(&out.stderr).trim())
        }),
    }
}

fn rustup_list(root: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root).args(args);
    let out = cmd.output().map_err(|e| format!("cannot run `{}`: {e}", command_line(&cmd)))?;
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", command_line(&cmd), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
        .unwrap_or(false)
}

fn probes_pass(p: &AptPackage) -> bool {
    p.commands.iter().all(|c| find_in_path(c).is_some()) && p.files.iter().all(|f| Path::new(f).exists())
}

fn missing_apt_packages(packages: &[&AptPackage]) -> Vec<&'static str> {
    packages.iter().filter(|p| !dpkg_installed(p.name) && !probes_pass(p)).map(|p| p.name).collect()
}

/// Installs those of `packages` that are missing, with apt-get.
pub fn ensure_apt(packages: &[&AptPackage]) -> Result<(), String> {
    let all: Vec<&str> = packages.iter().map(|p| p.name).collect();
    let missing = missing_apt_packages(packages);
    if missing.is_empty() {
        println!("setup: Debian packages already installed: {}", all.join(" "));
        return Ok(());
    }
    println!("setup: missing Debian packages: {}", missing.join(" "));
    if find_in_path("apt-get").is_none() {
        return Err(format!(
            "apt-get not found; install the equivalents of these Debian packages by hand: {}",
            missing.join(" ")
        ));
    }
    let sudo = if is_root() {
        None
    } else if find_in_path("sudo").is_some() {
        Some("sudo")
    } else {
        return Err(format!("not root and sudo not found; run as root: apt-get install {}", missing.join(" ")));
    };
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        println!("setup: $ {}", command_line(&cmd));
        match run_status(&mut cmd) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("`{}` failed", command_line(&cmd))),
            Err(e) => Err(e),
        }
    };
    apt(&["update"]).map_err(|e| format!("installing Debian packages {} failed: {e}", missing.join(" ")))?;
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(&missing);
    let pin = qemu_utils_pin(&missing);
    if let Some(pin) = &pin {
        println!("setup: qemu-system needs qemu-utils of its own version: {pin}");
        install_args.push("--allow-downgrades");
        install_args.push(pin);
    }
    apt(&install_args).map_err(|e| format!("installing Debian packages {} failed: {e}", missing.join(" ")))?;

    let still = missing_apt_packages(packages);
    if !still.is_empty() {
        return Err(format!("still missing after apt-get install: {}", still.join(" ")));
    }
    println!("setup: installed Debian packages: {}", missing.join(" "));
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}
