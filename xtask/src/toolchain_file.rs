//! Minimal reader for `rust-toolchain.toml`.
//!
//! The file is tiny and has a fixed shape (`[toolchain]` with `channel`, `components`,
//! `targets`), so a few lines of string handling replace a TOML dependency.

use std::path::Path;

/// The parts of `rust-toolchain.toml` that `cargo xtask setup` needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ToolchainFile {
    pub channel: Option<String>,
    pub components: Vec<String>,
    pub targets: Vec<String>,
}

impl ToolchainFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let section = toolchain_section(text).ok_or_else(|| "no [toolchain] section".to_string())?;
        let channel = match value_of(&section, "channel") {
            Some(v) => Some(single_string(&v).ok_or_else(|| format!("bad `channel` value: {v}"))?),
            None => None,
        };
        let components = match value_of(&section, "components") {
            Some(v) => string_array(&v).ok_or_else(|| format!("bad `components` value: {v}"))?,
            None => Vec::new(),
        };
        let targets = match value_of(&section, "targets") {
            Some(v) => string_array(&v).ok_or_else(|| format!("bad `targets` value: {v}"))?,
            None => Vec::new(),
        };
        Ok(Self { channel, components, targets })
    }
}

/// Drops `#` comments that are outside of double-quoted strings.
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The body of the `[toolchain]` table, comments removed, one logical line per entry
/// (multi-line arrays are joined).
fn toolchain_section(text: &str) -> Option<Vec<String>> {
    let mut in_section = false;
    let mut found = false;
    let mut entries: Vec<String> = Vec::new();
    let mut open_brackets = 0i32;
    for raw in text.lines() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if open_brackets == 0 && line.starts_with('[') {
            in_section = line == "[toolchain]";
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        if open_brackets > 0 {
            if let Some(last) = entries.last_mut() {
                last.push(' ');
                last.push_str(line);
            }
        } else {
            entries.push(line.to_string());
        }
        open_brackets += line.matches('[').count() as i32 - line.matches(']').count() as i32;
    }
    found.then_some(entries)
}

fn value_of(section: &[String], key: &str) -> Option<String> {
    section.iter().find_map(|entry| {
        let (k, v) = entry.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn single_string(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then(|| inner.to_string())
}

fn string_array(v: &str) -> Option<Vec<String>> {
    let inner = v.strip_prefix('[')?.strip_suffix(']')?;
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(single_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_workspace_file_shape() {
        let text = r#"
# comment
[toolchain]
channel = "1.95.0" # pinned
components = ["clippy", "rustfmt"]
targets = [
    "x86_64-unknown-none",
    "aarch64-unknown-none", # trailing comment
    "riscv64gc-unknown-none-elf",
]
"#;
        let tf = ToolchainFile::parse(text).unwrap();
        assert_eq!(tf.channel.as_deref(), Some("1.95.0"));
        assert_eq!(tf.components, ["clippy", "rustfmt"]);
        assert_eq!(tf.targets, ["x86_64-unknown-none", "aarch64-unknown-none", "riscv64gc-unknown-none-elf"]);
    }

    #[test]
    fn missing_keys_are_empty_and_missing_section_is_an_error() {
        let tf = ToolchainFile::parse("[toolchain]\nchannel = \"stable\"\n").unwrap();
        assert!(tf.targets.is_empty() && tf.components.is_empty());
        assert!(ToolchainFile::parse("[other]\nchannel = \"x\"\n").is_err());
    }

    #[test]
    fn ignores_other_tables() {
        let text = "[other]\ntargets = [\"nope\"]\n[toolchain]\ntargets = [\"yes\"]\n";
        assert_eq!(ToolchainFile::parse(text).unwrap().targets, ["yes"]);
    }

    #[test]
    fn reads_the_real_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let tf = ToolchainFile::read(&root.join("rust-toolchain.toml")).unwrap();
        assert!(tf.channel.is_some());
        assert!(tf.targets.iter().any(|t| t == "aarch64-unknown-linux-gnu"));
    }
}
