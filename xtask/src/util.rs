//! Small process helpers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The cargo that runs us (`$CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Set by a full `test` run: the plugin harness must then find the plugin built for every
/// target (a missing one fails instead of being reported as skipped).
pub static REQUIRE_PLUGINS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A `cargo` command with the given arguments, run from the workspace root.
pub fn cargo_cmd(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args(args);
    if REQUIRE_PLUGINS.load(std::sync::atomic::Ordering::Relaxed) {
        cmd.env("TESSERA_REQUIRE_PLUGINS", "1");
    }
    cmd
}

/// Shell-like rendering of a command for logs (`cargo` shown by name, not full path).
pub fn command_line(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program()).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    std::iter::once(prog)
        .chain(cmd.get_args().map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(char::is_whitespace) { format!("'{a}'") } else { a.into_owned() }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs with inherited stdio (output streams through). `Ok(success)`, or `Err` if it could
/// not be started.
pub fn run_status(cmd: &mut Command) -> Result<bool, String> {
    cmd.status().map(|s| s.success()).map_err(|e| format!("cannot start `{}`: {e}", command_line(cmd)))
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let m = (secs / 60.0).floor();
        format!("{}m{:04.1}s", m as u64, secs - m * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05.0s");
    }

    #[test]
    fn command_lines_quote_spaces() {
        let mut c = Command::new("/usr/bin/cargo");
        c.args(["run", "a b"]);
        assert_eq!(command_line(&c), "cargo run 'a b'");
    }
}
