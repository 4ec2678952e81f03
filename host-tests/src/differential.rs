//! The JIT and the fast interpreter against the reference interpreter on one program, over
//! the whole run-time surface the generated programs use ([`crate::program_gen`]): stack,
//! context, two granted regions (one read-only), an array map whose value the program
//! addresses directly, and helpers that read and write the program's memory. Every mode
//! starts from identical memory and must end with the same result or error and the same
//! bytes everywhere. Shared by the property test (`tests/differential.rs`) and the
//! cargo-fuzz target.

use tessera::ebpf::maps::{AlignedBytes, Map, MapDef, MapName};
use tessera::ebpf::{Error, Helper, Helpers, Insn, Memory, Mode, Region, Vm, disasm};

use crate::program_gen::{self, HELPER_ID, MAP_ENTRIES, MAP_VALUE_SIZE, PEEK_ID, POKE_ID, REGION_SIZES};

fn peek(memory: &mut Memory, addr: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    match memory.read(addr, 8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or_default()),
        None => u64::MAX,
    }
}

fn poke(memory: &mut Memory, addr: u64, value: u64, _: u64, _: u64, _: u64) -> u64 {
    memory.write(addr, &value.to_le_bytes()).is_none() as u64
}

/// The helpers generated programs call.
pub static HELPERS: [Helper; 3] = [
    Helper { id: HELPER_ID, func: program_gen::helper },
    Helper { id: PEEK_ID, func: peek },
    Helper { id: POKE_ID, func: poke },
];

/// The map generated programs address (`lddw` of a map value, map 0).
pub fn map_defs() -> [MapDef; 1] {
    [MapDef::new(2, 4, MAP_VALUE_SIZE, MAP_ENTRIES, 0, MapName::new("values")).unwrap_or_else(|e| panic!("{e}"))]
}

/// Everything a run can change, after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: Result<u64, Error>,
    pub stack: Vec<u8>,
    pub context: Vec<u8>,
    pub writable: Vec<u8>,
    pub map_values: Vec<u8>,
}

/// Runs `bytes` in `mode` from the fixed initial memory.
pub fn run(bytes: &[u8], maps: &[MapDef], mode: Mode, fuel: u64) -> Outcome {
    let mut vm = Vm::with_maps(bytes, maps, Helpers::new(&HELPERS)).unwrap_or_else(|e| panic!("generated: {e}"));
    vm.set_fuel(fuel);
    let mut stack = vec![0u8; tessera::ebpf::STACK_SIZE];
    let mut context: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let read_only: Vec<u8> = (0..REGION_SIZES[0] as u8).map(|i| i ^ 0x5a).collect();
    let mut writable: Vec<u8> = (0..REGION_SIZES[1] as u8).map(|i| i.wrapping_mul(11)).collect();
    // Map storage lives as long as the regions: `Memory` takes both for one lifetime.
    let mut storage = AlignedBytes::<256>::new();
    let mut map = Map::new_in(maps[0], storage.as_mut_slice()).unwrap_or_else(|e| panic!("{e}"));
    map.values_mut().iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 | 0x80);
    let mut maps = [map];
    let result = {
        let mut regions = [Region::ReadOnly(&read_only), Region::ReadWrite(&mut writable)];
        let mut memory = Memory::new(&mut stack, &mut context, &mut regions).with_maps(&mut maps);
        vm.run(mode, &mut memory)
    };
    let map_values = maps[0].values().to_vec();
    Outcome { result, stack, context, writable, map_values }
}

/// Runs `insns` in every mode; `Ok` with the result all agree on, `Err` (the program
/// disassembled, and what differs) when a mode disagrees with the reference interpreter.
pub fn check(insns: &[Insn], fuel: u64) -> Result<Result<u64, Error>, String> {
    let bytes = program_gen::to_bytes(insns);
    let maps = map_defs();
    let reference = run(&bytes, &maps, Mode::Interpreter, fuel);
    for mode in [Mode::Jit, Mode::FastInterpreter] {
        let got = run(&bytes, &maps, mode, fuel);
        if got == reference {
            continue;
        }
        let mut what = Vec::new();
        if got.result != reference.result {
            what.push(format!("result: {mode:?} {:?}, interpreter {:?}", got.result, reference.result));
        }
        for (name, a, b) in [
            ("stack", &got.stack, &reference.stack),
            ("context", &got.context, &reference.context),
            ("writable region", &got.writable, &reference.writable),
            ("map values", &got.map_values, &reference.map_values),
        ] {
            if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
                what.push(format!(
                    "{name} differs first at byte {at}: {mode:?} {:#04x}, interpreter {:#04x}",
                    a[at], b[at]
                ));
            }
        }
        return Err(format!(
            "{mode:?} and the interpreter disagree ({}) on\n{}",
            what.join("; "),
            disasm::Disassembly(insns)
        ));
    }
    Ok(reference.result)
}
