//! perf's map of JIT code: `/tmp/perf-PID.map`, one `START SIZE name` line (hex, no `0x`)
//! per compiled program, so `perf report` names samples in generated code instead of
//! showing bare addresses. perf reads the file when it reports, after the process is gone,
//! so it is appended to and never removed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The environment variable that turns the perf map on (`1`), as `--perf-map` does.
pub const ENV: &str = "TESSERA_PERF_MAP";

/// Whether the environment asks for a perf map (`TESSERA_PERF_MAP` set to anything but
/// empty or `0`).
pub fn enabled_by_env() -> bool {
    std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The map file perf reads for process `pid`.
pub fn path_for(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{pid}.map"))
}

/// An open perf map.
#[derive(Debug)]
pub struct PerfMap {
    path: PathBuf,
    file: File,
}

impl PerfMap {
    /// Opens (creating or appending to) this process's map.
    pub fn open() -> io::Result<PerfMap> {
        PerfMap::open_at(path_for(std::process::id()))
    }

    /// Opens (creating or appending to) the map at `path`.
    pub fn open_at(path: PathBuf) -> io::Result<PerfMap> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(PerfMap { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `size` bytes of code at `start` as `name` (whitespace in it becomes `_`:
    /// perf reads the name up to the end of the line, other tools up to a blank).
    pub fn record(&mut self, start: u64, size: usize, name: &str) -> io::Result<()> {
        let name: String = name.chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect();
        // One write per line, so concurrent writers do not interleave within a line.
        self.file.write_all(format!("{start:x} {size:x} {name}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hex_start_size_name() {
        let path = std::env::temp_dir().join(format!("tessera-perf-map-test-{}.map", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut map = PerfMap::open_at(path.clone()).unwrap();
        map.record(0x7f00_1234_0000, 0x1a2, "tessera:count").unwrap();
        map.record(0x10, 4, "two words\tand tab").unwrap();
        drop(map);
        // Appends to what is there.
        PerfMap::open_at(path.clone()).unwrap().record(0x20, 8, "again").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "7f0012340000 1a2 tessera:count\n10 4 two_words_and_tab\n20 8 again\n");
    }

    #[test]
    fn path_is_perfs() {
        assert_eq!(path_for(42), PathBuf::from("/tmp/perf-42.map"));
    }
}
