//! `cargo xtask test`: runs every test tier, keeps going after failures, prints a summary.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::setup::{SetupOutcome, setup};
use crate::util::{cargo_cmd, command_line, format_duration};

/// The host tier: (unless `--host-only`) the CLI's binaries built for the qemu-user targets
/// — the conformance plugin, which `cli/tests/plugin_conformance.rs` feeds through
/// qemu-user, and `tessera`, which `tessera run --isa` re-runs under qemu-user
/// (`cli/tests/isa.rs`); both tests then require them (`TESSERA_REQUIRE_PLUGINS`) — then
/// the whole workspace's tests; then the summary lines.
fn host_commands(host_only: bool) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    if !host_only {
        crate::util::REQUIRE_PLUGINS.store(true, std::sync::atomic::Ordering::Relaxed);
        for target in QEMU_USER_TARGETS {
            commands.push(args(&["build", "-p", "tessera-cli", "--bins", "--target", target]));
        }
    }
    // The plugin harness takes a minute; it runs once, with its summary lines shown.
    commands.push(args(&["test", "--workspace", "--no-fail-fast", "--", "--skip", "plugin_conformance"]));
    commands.push(summary_lines(None));
    commands.push(args(&["test", "-p", "tessera-cli", "--test", "plugin_conformance", "--", "--nocapture"]));
    commands
}

/// Re-runs the conformance, differential and examples-versus-native-C suites with their
/// output shown, so their per-ISA, per-mode `N passed, M failed` lines appear in the log (cargo captures the output
/// of passing tests otherwise). They take seconds, even under qemu-user.
fn summary_lines(target: Option<&str>) -> Vec<String> {
    let mut cmd = args(&["test", "-p", "tessera-host-tests"]);
    if let Some(t) = target {
        cmd.extend(args(&["--target", t]));
    }
    cmd.extend(args(&[
        "--test",
        "interp_conformance",
        "--test",
        "jit_conformance",
        "--test",
        "differential",
        "--test",
        "examples",
        "--",
        "--nocapture",
        "--test-threads=1",
    ]));
    cmd
}

/// Packages whose tests run on the qemu-user tier (tier 2).
pub const CROSS_TEST_PACKAGES: &[&str] =
    &["tessera-arch", "tessera-jit", "tessera-stencils", "tessera", "tessera-host-tests"];
/// Linux targets whose test binaries run through qemu-user (the `runner` in .cargo/config.toml).
pub const QEMU_USER_TARGETS: &[&str] = &["aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"];
/// Bare-metal targets the `no_std` core must build for.
pub const BARE_METAL_TARGETS: &[&str] = &["x86_64-unknown-none", "aarch64-unknown-none", "riscv64gc-unknown-none-elf"];
/// The stencil generator's package; `--check` fails when committed tables are stale.
pub const STENCIL_GEN_PACKAGE: &str = "tessera-stencil-gen";

/// Every front end's stencils: (source crate root, table directory, listing directory).
pub const FRONT_ENDS: &[(&str, &str, &str)] = &[
    ("stencils/ops/lib.rs", "stencils/src/generated", "stencils/listing"),
    ("jit/tests/toy/ops/lib.rs", "jit/tests/toy/generated", "jit/tests/toy/listing"),
];

/// The generator commands for every front end (`check`: verify instead of write).
pub fn stencil_commands(check: bool) -> Vec<Vec<String>> {
    FRONT_ENDS
        .iter()
        .map(|(source, out, listing)| {
            let mut cmd = args(&["run", "-p", STENCIL_GEN_PACKAGE, "--release", "--"]);
            if check {
                cmd.push("--check".into());
            }
            cmd.extend(args(&["--source", source, "--out", out, "--listing", listing]));
            cmd
        })
        .collect()
}

enum Status {
    Passed,
    Failed(String),
    Skipped(String),
}

struct TierResult {
    name: String,
    status: Status,
    duration: Option<Duration>,
}

/// What a tier needs from `setup` before it can run.
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    RustTargets,
    RustTargetsAndPackages,
}

enum Kind {
    Setup,
    /// Cargo invocations (argument lists); all of them run even if one fails.
    Cargo(Vec<Vec<String>>, Needs),
    /// `cargo xtask qemu`: the bare-metal images under qemu-system.
    Qemu,
    Skip(String),
}

struct Tier {
    name: String,
    kind: Kind,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn plan(host_only: bool) -> Vec<Tier> {
    let mut tiers = vec![
        Tier { name: "setup".into(), kind: Kind::Setup },
        Tier { name: "stencils".into(), kind: Kind::Cargo(stencil_commands(true), Needs::Nothing) },
        Tier {
            name: format!("host {}", std::env::consts::ARCH),
            kind: Kind::Cargo(host_commands(host_only), Needs::Nothing),
        },
    ];
    for target in QEMU_USER_TARGETS {
        let arch = target.split('-').next().unwrap_or(target).trim_end_matches("gc");
        let kind = if host_only {
            Kind::Skip("--host-only".into())
        } else {
            let mut cmd = args(&["test", "--no-fail-fast", "--target", target]);
            for p in CROSS_TEST_PACKAGES {
                cmd.extend(args(&["-p", p]));
            }
            Kind::Cargo(vec![cmd, summary_lines(Some(target))], Needs::RustTargetsAndPackages)
        };
        tiers.push(Tier { name: format!("qemu-user {arch}"), kind });
    }
    tiers.push(Tier {
        name: "no_std builds".into(),
        kind: if host_only {
            Kind::Skip("--host-only".into())
        } else {
            Kind::Cargo(
                BARE_METAL_TARGETS
                    .iter()
                    .map(|t| args(&["build", "-p", "tessera", "--no-default-features", "--target", t]))
                    // The additive `defmt` and `elf` (ELF loader) features, on one bare-metal
                    // target.
                    .chain(std::iter::once(args(&[
                        "build",
                        "-p",
                        "tessera",
                        "--no-default-features",
                        "--features",
                        "defmt,elf",
                        "--target",
                        "aarch64-unknown-none",
                    ])))
                    .collect(),
                Needs::RustTargets,
            )
        },
    });
    tiers.push(Tier {
        name: "qemu-system bare metal".into(),
        kind: if host_only { Kind::Skip("--host-only".into()) } else { Kind::Qemu },
    });
    tiers.push(Tier {
        name: "lint".into(),
        kind: Kind::Cargo(
            vec![
                // Formatting of every workspace: the main one, the bare-metal images, the
                // fuzz targets.
                args(&["fmt", "--all", "--", "--check"]),
                args(&["fmt", "--manifest-path", "qemu/Cargo.toml", "--all", "--", "--check"]),
                args(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--all", "--", "--check"]),
                args(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
                // The cargo-fuzz targets still build against the current API (stable; the
                // fuzzer itself needs nightly, the code does not).
                args(&["check", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
            ],
            Needs::Nothing,
        ),
    });
    tiers
}

fn unmet(needs: Needs, setup: Option<&SetupOutcome>) -> Option<String> {
    let s = setup?;
    let rust = s.rust.as_ref().err().map(|_| "Rust targets");
    let apt = s.apt.as_ref().err().map(|_| "Debian packages");
    let missing: Vec<&str> = match needs {
        Needs::Nothing => vec![],
        Needs::RustTargets => rust.into_iter().collect(),
        Needs::RustTargetsAndPackages => rust.into_iter().chain(apt).collect(),
    };
    (!missing.is_empty()).then(|| format!("setup failed ({})", missing.join(", ")))
}

/// Runs all tiers; returns whether none failed.
pub fn test(root: &Path, host_only: bool) -> bool {
    let tiers = plan(host_only);
    let total = tiers.len();
    let mut setup_outcome: Option<SetupOutcome> = None;
    let mut results = Vec::with_capacity(total);

    for (i, tier) in tiers.into_iter().enumerate() {
        println!();
        println!("==> [{}/{total}] {}", i + 1, tier.name);
        let start = Instant::now();
        let status = match tier.kind {
            Kind::Skip(reason) => Status::Skipped(reason),
            Kind::Setup => {
                let outcome = setup(root, host_only);
                let status = match outcome.error() {
                    Some(e) => Status::Failed(e),
                    None => Status::Passed,
                };
                setup_outcome = Some(outcome);
                status
            }
            Kind::Cargo(cmds, needs) => match unmet(needs, setup_outcome.as_ref()) {
                Some(reason) => Status::Skipped(reason),
                None => run_cargo_all(root, &cmds),
            },
            Kind::Qemu => match unmet(Needs::RustTargetsAndPackages, setup_outcome.as_ref()) {
                Some(reason) => Status::Skipped(reason),
                None if crate::qemu::qemu(root) => Status::Passed,
                None => Status::Failed("`cargo xtask qemu` failed (see its output above)".into()),
            },
        };
        let status = fail_skip_under_ci(status, std::env::var_os("CI").is_some());
        let duration = (!matches!(status, Status::Skipped(_))).then(|| start.elapsed());
        match (&status, duration) {
            (Status::Passed, Some(d)) => {
                println!("<== {}: passed ({})", tier.name, format_duration(d))
            }
            (Status::Failed(e), Some(d)) => {
                println!("<== {}: FAILED ({}): {e}", tier.name, format_duration(d))
            }
            (Status::Skipped(r), _) => println!("<== {}: skipped: {r}", tier.name),
            _ => {}
        }
        results.push(TierResult { name: tier.name, status, duration });
    }

    print_summary(&results)
}

/// Under CI a tier that cannot run fails the run (only `--host-only` skips on purpose).
fn fail_skip_under_ci(status: Status, ci: bool) -> Status {
    match status {
        Status::Skipped(reason) if ci && reason != "--host-only" => {
            Status::Failed(format!("cannot run ({reason}), and CI is set"))
        }
        other => other,
    }
}

fn run_cargo_all(root: &Path, cmds: &[Vec<String>]) -> Status {
    let mut failures = Vec::new();
    for a in cmds {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut cmd = cargo_cmd(root, &refs);
        let line = command_line(&cmd);
        println!("$ {line}");
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(s) => failures.push(format!("`{line}` ({s})")),
            Err(e) => failures.push(format!("`{line}` could not start: {e}")),
        }
    }
    if failures.is_empty() { Status::Passed } else { Status::Failed(failures.join("; ")) }
}

fn print_summary(results: &[TierResult]) -> bool {
    let name_w = results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!();
    println!("==> summary");
    println!("{:<name_w$}  {:<7}  {:>9}  detail", "tier", "status", "duration");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for r in results {
        let (status, detail) = match &r.status {
            Status::Passed => {
                passed += 1;
                ("passed", String::new())
            }
            Status::Failed(e) => {
                failed += 1;
                ("FAILED", e.clone())
            }
            Status::Skipped(reason) => {
                skipped += 1;
                ("skipped", reason.clone())
            }
        };
        let dur = r.duration.map(format_duration).unwrap_or_else(|| "-".into());
        let line = format!("{:<name_w$}  {status:<7}  {dur:>9}  {detail}", r.name);
        println!("{}", line.trim_end());
    }
    println!();
    if failed > 0 {
        println!("result: FAILED ({failed} failed, {passed} passed, {skipped} skipped)");
    } else {
        println!("result: ok ({passed} passed, {skipped} skipped)");
    }
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_skips_cross_tiers_and_never_plans_them_as_runs() {
        let tiers = plan(true);
        for t in &tiers {
            if t.name.starts_with("qemu-user") || t.name == "no_std builds" {
                assert!(matches!(t.kind, Kind::Skip(_)), "{} should be skipped", t.name);
            }
        }
        assert!(tiers.iter().any(|t| t.name == "lint"));
    }

    #[test]
    fn full_plan_has_one_qemu_user_tier_per_target() {
        let tiers = plan(false);
        let qemu: Vec<_> = tiers.iter().filter(|t| t.name.starts_with("qemu-user")).collect();
        assert_eq!(qemu.len(), QEMU_USER_TARGETS.len());
        assert_eq!(qemu[0].name, "qemu-user aarch64");
        assert_eq!(qemu[1].name, "qemu-user riscv64");
        let Kind::Cargo(cmds, _) = &qemu[1].kind else { panic!() };
        assert_eq!(
            cmds[0].join(" "),
            "test --no-fail-fast --target riscv64gc-unknown-linux-gnu -p tessera-arch -p tessera-jit -p tessera-stencils \
             -p tessera -p tessera-host-tests"
        );
    }

    #[test]
    fn host_tier_cross_builds_tessera_and_the_plugin_before_the_tests() {
        // `cli/tests/isa.rs` and `plugin_conformance.rs` need the binaries of every
        // qemu-user target (`--bins`: `tessera` and `tessera-bpf-plugin`).
        let cmds = host_commands(false);
        for (cmd, target) in cmds.iter().zip(QEMU_USER_TARGETS) {
            assert_eq!(cmd.join(" "), format!("build -p tessera-cli --bins --target {target}"));
        }
        assert!(cmds[QEMU_USER_TARGETS.len()].starts_with(&args(&["test", "--workspace"])));
        assert!(host_commands(true).iter().all(|c| !c.contains(&"--target".to_string())));
    }

    #[test]
    fn failed_setup_skips_dependent_tiers_only() {
        let s = SetupOutcome { rust: Ok(()), apt: Err("x".into()) };
        assert!(unmet(Needs::Nothing, Some(&s)).is_none());
        assert!(unmet(Needs::RustTargets, Some(&s)).is_none());
        assert!(unmet(Needs::RustTargetsAndPackages, Some(&s)).is_some());
    }

    #[test]
    fn qemu_tier_runs_unless_host_only() {
        let find = |tiers: Vec<Tier>| tiers.into_iter().find(|t| t.name == "qemu-system bare metal").unwrap().kind;
        assert!(matches!(find(plan(false)), Kind::Qemu));
        assert!(matches!(find(plan(true)), Kind::Skip(_)));
    }

    #[test]
    fn a_tier_that_cannot_run_fails_under_ci() {
        let skipped = || Status::Skipped("setup failed (Debian packages)".into());
        assert!(matches!(fail_skip_under_ci(skipped(), true), Status::Failed(_)));
        assert!(matches!(fail_skip_under_ci(skipped(), false), Status::Skipped(_)));
        assert!(matches!(fail_skip_under_ci(Status::Skipped("--host-only".into()), true), Status::Skipped(_)));
        assert!(matches!(fail_skip_under_ci(Status::Passed, true), Status::Passed));
    }

    #[test]
    fn summary_fails_when_any_tier_failed() {
        let r = |status| TierResult { name: "t".into(), status, duration: None };
        assert!(print_summary(&[r(Status::Passed), r(Status::Skipped("why".into()))]));
        assert!(!print_summary(&[r(Status::Passed), r(Status::Failed("boom".into()))]));
    }
}
