//! Maps and the standard helpers at run time, where a C program cannot go (see
//! `examples.rs` for what C can): the exact typed error or helper return for every bad
//! input, each the same in the interpreter and the JIT.
//!
//! - runs whose maps are not the program's: `RunError::MapMismatch`; programs validated
//!   against too few maps or without the standard helpers: `LoadError::UnknownMap` /
//!   `UnknownHelper`;
//! - map helpers given pointers the program may not read (null, past the stack, a map
//!   handle): `-EFAULT`; a handle that names no map, or unknown flags: `-EINVAL`; lookups
//!   return NULL; the map is left as it was;
//! - `bpf_trace_printk` with a bad format pointer, size or conversion;
//! - loads and stores through map pointers outside one value, into a read-only map, or
//!   through a map handle: `RunError::MemoryFault` naming the instruction and address.

use tessera::ebpf::asm::assemble_to_vec;
use tessera::ebpf::elf::{Object, Select};
use tessera::ebpf::helpers::standard::STANDARD;
use tessera::ebpf::insn::{op, pseudo};
use tessera::ebpf::maps::{Map, MapDef, MapName, flags};
use tessera::ebpf::memory::Host;
use tessera::ebpf::{Error, Helpers, Insn, LoadError, Memory, Mode, RunError, Vm};
use tessera_stencils::abi::MAP_HANDLE;

const STACK_LEN: usize = tessera::ebpf::STACK_SIZE;
const EFAULT: u64 = -14i64 as u64;
const EINVAL: u64 = -22i64 as u64;

fn def(map_type: u32, key: u32, value: u32, max: u32, map_flags: u32, name: &str) -> MapDef {
    MapDef::new(map_type, key, value, max, map_flags, MapName::new(name)).unwrap()
}

/// The maps of the hand-written programs: 0 an array (12-byte values, stride 16), 1 a hash
/// map (8-byte keys and values), 2 a read-only array (as `.rodata`).
fn defs() -> [MapDef; 3] {
    [def(2, 4, 12, 3, 0, "array"), def(1, 8, 8, 2, 0, "hash"), def(2, 4, 8, 1, flags::BPF_F_RDONLY_PROG, ".rodata")]
}

/// Assembles `text`, where an `lddw` operand may be `map:M` (the handle of map M, src 1) or
/// `value:M+K` (the address of byte K of map M's value, src 2).
fn program(text: &str) -> Vec<u8> {
    let mut patches = Vec::new();
    let mut plain = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("lddw") {
            let (head, operand) = trimmed.rsplit_once(", ").expect("lddw %rN, operand");
            let patch = if let Some(map) = operand.strip_prefix("map:") {
                Some((pseudo::LDDW_MAP_FD, map.parse::<i32>().unwrap(), 0))
            } else if let Some(value) = operand.strip_prefix("value:") {
                let (map, offset) = value.split_once('+').unwrap();
                Some((pseudo::LDDW_MAP_VALUE, map.parse::<i32>().unwrap(), offset.parse::<i32>().unwrap()))
            } else {
                None
            };
            if patch.is_some() {
                plain.push_str(&format!("{head}, 0\n"));
            } else {
                plain.push_str(&format!("{trimmed}\n"));
            }
            patches.push(patch);
        } else {
            plain.push_str(&format!("{line}\n"));
        }
    }
    let mut insns = assemble_to_vec(&plain).unwrap_or_else(|e| panic!("{e:?}\n{plain}"));
    let lddws: Vec<usize> = (0..insns.len()).filter(|&pc| insns[pc].opcode == op::LDDW).collect();
    // Second slots have opcode 0, so every LDDW found is a first slot.
    assert_eq!(lddws.len(), patches.len());
    for (pc, patch) in lddws.into_iter().zip(patches) {
        if let Some((src, map, offset)) = patch {
            insns[pc] = Insn::new(op::LDDW, insns[pc].dst, src, 0, map);
            insns[pc + 1] = Insn::new(0, 0, 0, 0, offset);
        }
    }
    insns.iter().flat_map(Insn::encode).collect()
}

/// A host that keeps the trace.
#[derive(Default)]
struct Trace(Vec<Vec<u8>>);

impl Host for Trace {
    fn trace(&mut self, message: &[u8]) {
        self.0.push(message.to_vec());
    }
}

/// What a run left: r0 or the error, the maps' value areas and element counts, the trace.
type Outcome = (Result<u64, RunError>, Vec<(Vec<u8>, u32)>, Vec<Vec<u8>>);

fn run(code: &[u8], defs: &[MapDef], mode: Mode, context: &[u8]) -> Outcome {
    let vm = Vm::with_maps(code, defs, Helpers::new(&STANDARD)).expect("validates");
    let mut maps: Vec<Map<'static>> = defs.iter().map(|d| Map::new(*d).unwrap()).collect();
    let mut stack = vec![0u8; STACK_LEN];
    let mut context = context.to_vec();
    let mut trace = Trace::default();
    let result = {
        let mut memory = Memory::new(&mut stack, &mut context, &mut []).with_maps(&mut maps).with_host(&mut trace);
        match mode {
            Mode::Interpreter => vm.interpret(&mut memory),
            Mode::FastInterpreter => vm.prepare_fast().run(&mut memory),
            Mode::Jit => vm.compile().expect("compiles").run(&mut memory),
        }
    };
    (result, maps.iter().map(|m| (m.values().to_vec(), m.len())).collect(), trace.0)
}

/// Runs `text` in every mode with the maps of [`defs`]; they must agree on everything.
fn run_both(text: &str, context: &[u8]) -> Outcome {
    let code = program(text);
    let interpreted = run(&code, &defs(), Mode::Interpreter, context);
    for mode in [Mode::FastInterpreter, Mode::Jit] {
        assert_eq!(run(&code, &defs(), mode, context), interpreted, "{mode:?} and the interpreter disagree on\n{text}");
    }
    interpreted
}

fn r0(text: &str) -> Result<u64, RunError> {
    run_both(text, &[]).0
}

/// Every map as it starts: zeroed values, an empty hash map.
fn untouched() -> Vec<(Vec<u8>, u32)> {
    defs()
        .iter()
        .map(|d| (vec![0; d.values_len()], if d.map_type().raw() == 1 { 0 } else { d.max_entries() }))
        .collect()
}

#[test]
fn map_helpers_given_bad_pointers_return_efault() {
    // (key pointer, value pointer) set up before `call 2` on the hash map; a valid key
    // (7) and value (9) are on the stack at r10-8 and r10-16.
    let update = |key: &str, value: &str| {
        format!(
            "mov %r6, 7\nstxdw [%r10-8], %r6\nmov %r6, 9\nstxdw [%r10-16], %r6\n\
             lddw %r1, map:1\n{key}\n{value}\nmov %r4, 0\ncall 2\nexit"
        )
    };
    let stack_key = "mov %r2, %r10\nadd %r2, -8";
    let stack_value = "mov %r3, %r10\nadd %r3, -16";
    for (key, value) in [
        ("mov %r2, 0", stack_value),                 // null key
        ("mov %r2, %r10\nadd %r2, -4", stack_value), // key runs past the stack
        ("lddw %r2, map:1", stack_value),            // a map handle as the key
        ("lddw %r2, 0x700000000", stack_value),      // no region 7 (the maps are 3, 4, 5)
        (stack_key, "mov %r3, 0"),                   // null value
        (stack_key, "mov %r3, %r10"),                // value past the stack
        (stack_key, "lddw %r3, value:0+8"),          // value crosses a map value's end
    ] {
        let text = update(key, value);
        let (result, maps, _) = run_both(&text, &[]);
        assert_eq!(result, Ok(EFAULT), "{text}");
        assert_eq!(maps, untouched(), "{text}");
    }
    // The same key and value pointers work.
    let (result, maps, _) = run_both(&update(stack_key, stack_value), &[]);
    assert_eq!(result, Ok(0));
    assert_eq!(maps[1].1, 1);

    // Delete with a bad key: -EFAULT; lookup with a bad key: NULL.
    for call in ["call 3", "call 1"] {
        let expected = if call == "call 3" { EFAULT } else { 0 };
        for key in ["mov %r2, 0", "mov %r2, %r10", "lddw %r2, map:0"] {
            let text = format!("lddw %r1, map:1\n{key}\n{call}\nexit");
            assert_eq!(r0(&text), Ok(expected), "{text}");
        }
    }
    // A key in read-only memory (the .rodata map) and a value inside the map being updated
    // are fine: the helper copies them first.
    let text = "lddw %r1, map:0\nlddw %r2, value:2+0\nlddw %r3, value:0+0\nmov %r4, 0\ncall 2\nexit";
    assert_eq!(r0(text), Ok(0));
}

#[test]
fn map_helpers_given_no_map_or_bad_flags_return_einval() {
    let key_and_value = "stdw [%r10-8], 7\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r2";
    for handle in ["mov %r1, 5", "lddw %r1, 0xffff000000000003", "lddw %r1, value:0+0", "mov %r1, %r10"] {
        let update = format!("{handle}\n{key_and_value}\nmov %r4, 0\ncall 2\nexit");
        let (result, maps, _) = run_both(&update, &[]);
        assert_eq!(result, Ok(EINVAL), "{update}");
        assert_eq!(maps, untouched());
        let delete = format!("{handle}\n{key_and_value}\ncall 3\nexit");
        assert_eq!(r0(&delete), Ok(EINVAL), "{delete}");
        let lookup = format!("{handle}\n{key_and_value}\ncall 1\nexit");
        assert_eq!(r0(&lookup), Ok(0), "{lookup}");
    }
    // Flags above BPF_EXIST, on both map types; the maps stay as they were.
    for (map, flag) in [(0, 3), (1, 3), (1, 4), (0, -1)] {
        let text = format!(
            "lddw %r1, map:{map}\nstdw [%r10-8], 1\nstdw [%r10-16], 0\nmov %r2, %r10\nadd %r2, -8\n\
             mov %r3, %r10\nadd %r3, -24\nlddw %r4, {flag}\ncall 2\nexit"
        );
        let (result, maps, _) = run_both(&text, &[]);
        assert_eq!(result, Ok(EINVAL), "{text}");
        assert_eq!(maps, untouched());
    }
}

#[test]
fn trace_printk_errors() {
    // The format "%d!" in the context; r1 = its address (or something else), r2 = its size.
    let context = b"%d!\0%q\0%d %d %d %d\0%s\0";
    let call = |fmt: &str, size: i32, arg: &str| format!("mov %r6, %r1\n{fmt}\nmov %r2, {size}\n{arg}\ncall 6\nexit");
    let cases = [
        (call("", 4, "mov %r3, 42"), Ok(3), vec![b"42!".to_vec()]),
        (call("mov %r1, 0", 4, ""), Ok(EFAULT), vec![]),
        (call("mov %r1, %r10", 4, ""), Ok(EFAULT), vec![]),
        (call("", 257, ""), Ok(EINVAL), vec![]),
        // The size reaches past the context: the format cannot be read.
        (call("", 64, ""), Ok(EFAULT), vec![]),
        (call("add %r1, 4", 3, ""), Ok(EINVAL), vec![]),            // %q
        (call("add %r1, 7", 12, ""), Ok(EINVAL), vec![]),           // four conversions
        (call("add %r1, 19", 3, "mov %r3, 0"), Ok(EINVAL), vec![]), // %s of NULL
        (call("add %r1, 19", 3, "mov %r3, %r6\nadd %r3, 4"), Ok(2), vec![b"%q".to_vec()]),
    ];
    for (text, expected, trace) in cases {
        let (result, _, messages) = run_both(&text, context);
        assert_eq!(result, expected, "{text}");
        assert_eq!(messages, trace, "{text}");
    }
}

#[test]
fn map_pointers_are_bounded_to_one_value() {
    // r0 = the array's value 1 (12 bytes at offset 16 of its value area).
    let lookup = "stw [%r10-4], 1\nlddw %r1, map:0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n";
    let value = tessera::ebpf::Memory::map_address(0) + 16;
    // Instructions of `lookup`: stw, lddw (2), mov, add, call = 6 slots.
    let fault = |addr| Err(RunError::MemoryFault { pc: 6, addr });
    assert_eq!(r0(&format!("{lookup}ldxw %r0, [%r0+8]\nexit")), Ok(0));
    assert_eq!(r0(&format!("{lookup}ldxw %r0, [%r0+12]\nexit")), fault(value + 12));
    assert_eq!(r0(&format!("{lookup}ldxdw %r0, [%r0+8]\nexit")), fault(value + 8));
    assert_eq!(r0(&format!("{lookup}ldxb %r0, [%r0-1]\nexit")), fault(value - 1));
    assert_eq!(r0(&format!("{lookup}stxw [%r0+12], %r0\nexit")), fault(value + 12));
    assert_eq!(r0(&format!("{lookup}ldxb %r0, [%r0+32]\nexit")), fault(value + 32)); // past the last value
    // A store lands in the map.
    let (result, maps, _) = run_both(&format!("{lookup}stw [%r0+8], 0x55\nmov %r0, 0\nexit"), &[]);
    assert_eq!(result, Ok(0));
    assert_eq!(&maps[0].0[16 + 8..16 + 12], &[0x55, 0, 0, 0]);

    // The read-only map: loads work, stores and atomics fault.
    let rodata = tessera::ebpf::Memory::map_address(2);
    assert_eq!(r0("lddw %r1, value:2+0\nldxdw %r0, [%r1]\nexit"), Ok(0));
    assert_eq!(r0("lddw %r1, value:2+4\nstw [%r1], 1\nexit"), Err(RunError::MemoryFault { pc: 2, addr: rodata + 4 }));
    assert_eq!(
        r0("lddw %r1, value:2+0\nmov %r2, 1\nlock add [%r1], %r2\nexit"),
        Err(RunError::MemoryFault { pc: 3, addr: rodata })
    );
    // A map handle is not memory.
    assert_eq!(
        r0("lddw %r1, map:1\nldxb %r0, [%r1]\nexit"),
        Err(RunError::MemoryFault { pc: 2, addr: MAP_HANDLE | 1 })
    );
}

/// The counter example's `count_keys`: two maps (a hash map, then an array).
fn count_keys() -> (Vec<u8>, Vec<MapDef>) {
    let object = Object::parse(include_bytes!("../../examples/counter.o")).unwrap();
    let code = object.load(Select::Function("count_keys")).unwrap().code;
    (code, object.maps().map(|m| m.def).collect())
}

#[test]
fn runs_need_the_programs_maps() {
    let (code, defs) = count_keys();
    let vm = Vm::with_maps(&code, &defs, Helpers::new(&STANDARD)).unwrap();
    let jit = vm.compile().unwrap();
    let keys = [1u8, 0, 0, 0, 2, 0, 0, 0];
    let other = def(1, 4, 8, 65, 0, "counts");
    let cases: [(Vec<MapDef>, Result<u64, RunError>); 6] = [
        (defs.clone(), Ok(2)),
        (vec![], Err(RunError::MapMismatch { map: 0 })),
        (defs[..1].to_vec(), Err(RunError::MapMismatch { map: 1 })),
        (vec![defs[1], defs[0]], Err(RunError::MapMismatch { map: 0 })),
        (vec![other, defs[1]], Err(RunError::MapMismatch { map: 0 })),
        ([defs.clone(), defs.clone()].concat(), Err(RunError::MapMismatch { map: 2 })),
    ];
    for (run_defs, expected) in cases {
        let mut maps: Vec<Map<'static>> = run_defs.iter().map(|d| Map::new(*d).unwrap()).collect();
        let mut stack = vec![0u8; STACK_LEN];
        let mut context = keys;
        let mut memory = Memory::new(&mut stack, &mut context, &mut []).with_maps(&mut maps);
        assert_eq!(vm.interpret(&mut memory), expected, "{run_defs:?}");
        assert_eq!(jit.run(&mut memory), expected.map(|_| 0), "{run_defs:?}: the keys are known now");
        let mut vm = Vm::with_maps(&code, &defs, Helpers::new(&STANDARD)).unwrap();
        assert_eq!(vm.run(Mode::Jit, &mut memory), expected.map(|_| 0).map_err(Error::Run));
    }
}

#[test]
fn programs_need_their_maps_and_helpers_to_load() {
    let (code, defs) = count_keys();
    // The first pseudo load (pc 11) names map 1; the first call (pc 13) helper 1.
    assert_eq!(
        Vm::with_maps(&code, &[], Helpers::new(&STANDARD)).err(),
        Some(LoadError::UnknownMap { pc: 11, map: 1 })
    );
    assert_eq!(
        Vm::with_maps(&code, &defs[..1], Helpers::new(&STANDARD)).err(),
        Some(LoadError::UnknownMap { pc: 11, map: 1 })
    );
    assert_eq!(Vm::with_maps(&code, &defs, Helpers::empty()).err(), Some(LoadError::UnknownHelper { pc: 13, id: 1 }));
    assert_eq!(Vm::new(&code, Helpers::new(&STANDARD)).err(), Some(LoadError::UnknownMap { pc: 11, map: 1 }));
}
