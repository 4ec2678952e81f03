//! Golden tests of emitted code: the counting-loop program is cross-emitted for every ISA
//! at a fixed base address and compared byte for byte with `golden/count_loop.<isa>.txt`,
//! whose disassembly was recorded with llvm-objdump. When llvm-objdump is installed the
//! disassembly is regenerated and compared too. `TESSERA_BLESS=1` rewrites the files.

use std::path::PathBuf;
use std::process::Command;

use tessera::ebpf::{Helpers, Vm, asm};
use tessera_arch::Isa;

const PROGRAM: &str = "\
mov %r0, 0
mov %r1, 10
loop:
add %r0, %r1
sub %r1, 1
jne %r1, 0, loop
exit
";

const BASE: u64 = 0x1000_0000;

fn emit(isa: Isa) -> Vec<u8> {
    let bytes = asm::assemble_to_bytes(PROGRAM).expect("assembles");
    let vm = Vm::new(&bytes, Helpers::empty()).expect("valid");
    tessera_host_tests::emit_at(&vm, isa, BASE).expect("emits")
}

fn golden_path(isa: Isa) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("golden/count_loop.{isa}.txt"))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// llvm-objdump's disassembly of `code` placed at BASE, or None when the tool is missing.
fn objdump(isa: Isa, code: &[u8]) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("tessera-golden-{}-{isa}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let elf = dir.join("code.o");
    let arch = match isa {
        Isa::X86_64 => object::Architecture::X86_64,
        Isa::Aarch64 => object::Architecture::Aarch64,
        Isa::Riscv64 => object::Architecture::Riscv64,
    };
    let mut obj = object::write::Object::new(object::BinaryFormat::Elf, arch, object::Endianness::Little);
    if isa == Isa::Riscv64 {
        // RV64GC: tell the disassembler about compressed instructions.
        obj.flags = object::FileFlags::Elf {
            os_abi: 0,
            abi_version: 0,
            e_flags: object::elf::EF_RISCV_RVC | object::elf::EF_RISCV_FLOAT_ABI_DOUBLE,
        };
    }
    let text = obj.section_id(object::write::StandardSection::Text);
    obj.append_section_data(text, code, 16);
    std::fs::write(&elf, obj.write().ok()?).ok()?;
    let mut cmd = Command::new("llvm-objdump");
    cmd.args(["-d", "--no-show-raw-insn"]);
    if isa == Isa::Riscv64 {
        cmd.arg("--mattr=+m,+a,+f,+d,+c");
    }
    let out = cmd.arg(format!("--adjust-vma={BASE:#x}")).arg(&elf).output().ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Keep only instruction lines: the header names the temporary file.
    Some(
        text.lines()
            .filter(|l| l.split_once(':').is_some_and(|(a, _)| u64::from_str_radix(a.trim(), 16).is_ok()))
            .map(|l| l.trim().replace('\t', " "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn check(isa: Isa) {
    let code = emit(isa);
    let path = golden_path(isa);
    let disasm = objdump(isa, &code);
    if std::env::var_os("TESSERA_BLESS").is_some() {
        let disasm = disasm.expect("llvm-objdump is needed to bless golden files");
        std::fs::write(&path, format!("# bytes\n{}\n# disassembly (llvm-objdump)\n{disasm}\n", hex(&code))).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (bytes_part, disasm_part) = golden.split_once("# disassembly (llvm-objdump)\n").expect("golden file layout");
    let want = bytes_part.trim_start_matches("# bytes\n").trim();
    assert_eq!(hex(&code), want, "{isa}: emitted bytes differ from {}", path.display());
    match disasm {
        Some(text) => assert_eq!(text.trim(), disasm_part.trim(), "{isa}: disassembly differs"),
        None => println!("{isa}: disassembly comparison skipped (llvm-objdump not installed); bytes matched"),
    }
}

#[test]
fn x86_64_counting_loop() {
    check(Isa::X86_64);
}

#[test]
fn aarch64_counting_loop() {
    check(Isa::Aarch64);
}

#[test]
fn riscv64_counting_loop() {
    check(Isa::Riscv64);
}
