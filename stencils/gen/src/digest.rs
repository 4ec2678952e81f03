//! Digests: of the generator's inputs (recorded in every table) and of each generated
//! file's own contents (recorded in its header), so `--check` catches stale tables and
//! hand edits without the nightly. FNV-1a, 64-bit: change detection, not security.

use std::path::{Path, PathBuf};

use crate::{COMMON_FLAGS, STENCIL_TOOLCHAIN, TargetSpec};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Every file below `dir`, recursively, sorted.
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_below(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Digest of every file in the input directories (named relative to the directory's
/// parent, so the digest does not depend on where the workspace is), the flags, the target
/// and the toolchain.
pub fn inputs(dirs: &[PathBuf], spec: &TargetSpec) -> Result<u64, String> {
    let mut h = FNV_OFFSET;
    for dir in dirs {
        let mut files = Vec::new();
        files_below(dir, &mut files)?;
        let base = dir.parent().unwrap_or(dir);
        for file in files {
            let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let name = file.strip_prefix(base).unwrap_or(&file).to_string_lossy().replace('\\', "/");
            h = fnv1a(h, name.as_bytes());
            h = fnv1a(h, &(text.len() as u64).to_le_bytes());
            h = fnv1a(h, &text);
        }
    }
    for flag in COMMON_FLAGS.iter().chain(spec.flags) {
        h = fnv1a(h, flag.as_bytes());
    }
    h = fnv1a(h, spec.triple.as_bytes());
    Ok(fnv1a(h, STENCIL_TOOLCHAIN.as_bytes()))
}

const INPUTS_LINE: &str = " inputs digest: ";
const CONTENTS_LINE: &str = " contents digest: ";

/// The inputs digest recorded in a generated file, if it has one.
pub fn committed_inputs(text: &str) -> Option<u64> {
    header_value(text, INPUTS_LINE)
}

fn header_value(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().take(8).find(|l| l.contains(key))?;
    let hex = line.split(key).nth(1)?.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16).ok()
}

/// Inserts the contents-digest line after the first line of `text` (the "generated"
/// banner), computed over `text` itself. `comment` is the file's comment leader.
pub fn seal(comment: &str, text: &str) -> String {
    let digest = fnv1a(FNV_OFFSET, text.as_bytes());
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    format!("{first}\n{comment}{CONTENTS_LINE}{digest:#018x}\n{rest}")
}

/// Checks a file written by [`seal`]: the digest in its header matches the rest.
pub fn verify_contents(text: &str) -> Result<(), String> {
    let want = header_value(text, CONTENTS_LINE).ok_or("no contents digest")?;
    let (first, rest) = text.split_once('\n').ok_or("truncated")?;
    let (_, rest) = rest.split_once('\n').ok_or("truncated")?;
    let have = fnv1a(FNV_OFFSET, format!("{first}\n{rest}").as_bytes());
    if have == want {
        Ok(())
    } else {
        Err(format!("contents digest {have:#018x}, header says {want:#018x}: edited by hand?"))
    }
}

/// The source files a rustc dep-info file lists (the `path:` lines after the first).
pub fn dep_info_sources(dep_info: &str) -> Vec<PathBuf> {
    dep_info
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_suffix(':'))
        .map(|p| {
            let path = PathBuf::from(p.replace("\\ ", " "));
            path.canonicalize().unwrap_or(path)
        })
        .collect()
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so
/// a reader never sees a half-written table.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().ok_or_else(|| format!("{}: no directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_contents_verify_and_edits_are_caught() {
        let text = "// @generated\n// inputs digest: 0x0000000000000001\nstatic X: u8 = 1;\n";
        let sealed = seal("//", text);
        assert_eq!(sealed.lines().nth(1).map(|l| l.starts_with("// contents digest: 0x")), Some(true));
        assert_eq!(verify_contents(&sealed), Ok(()));
        assert_eq!(committed_inputs(&sealed), Some(1));
        let edited = sealed.replace("= 1;", "= 2;");
        assert!(verify_contents(&edited).unwrap_err().contains("edited by hand"));
        assert_eq!(verify_contents(text), Err("no contents digest".into()));
    }

    #[test]
    fn input_digest_covers_every_file_of_the_directory() {
        let dir = std::env::temp_dir().join(format!("tessera-gen-digest-{}", std::process::id()));
        let sub = dir.join("inner");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("lib.rs"), "a").unwrap();
        let spec = &crate::TARGETS[0];
        let before = inputs(std::slice::from_ref(&dir), spec).unwrap();
        std::fs::write(sub.join("new.rs"), "b").unwrap();
        let with_new_file = inputs(std::slice::from_ref(&dir), spec).unwrap();
        assert_ne!(before, with_new_file, "a file added anywhere below the directory changes the digest");
        std::fs::write(sub.join("new.rs"), "c").unwrap();
        assert_ne!(with_new_file, inputs(std::slice::from_ref(&dir), spec).unwrap());
        assert_ne!(before, inputs(std::slice::from_ref(&dir), &crate::TARGETS[1]).unwrap(), "flags count");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dep_info_lists_sources() {
        let d = "/t/x.o: /a/lib.rs /a/abi.rs\n\n/a/lib.rs:\n/a/abi.rs:\n";
        assert_eq!(dep_info_sources(d), vec![PathBuf::from("/a/lib.rs"), PathBuf::from("/a/abi.rs")]);
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("tessera-gen-write-{}", std::process::id()));
        let path = dir.join("t.rs");
        write_atomically(&path, "one").unwrap();
        write_atomically(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
