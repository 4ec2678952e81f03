//! The C programs that have committed eBPF objects (`examples/*.c`, `host-tests/c/*.c`): their
//! objects (default CPU and `-mcpu=v1..v4`), and the same sources compiled natively for the
//! target by `build.rs`, with the helpers of `examples/native/bpf_native.c` (tessera's map
//! semantics, a deterministic clock and randomness, a trace buffer). Tests run the objects
//! through tessera and compare with a native [`Session`].
//!
//! The native programs keep their state (maps, globals, the helpers' host) in the process:
//! a session holds a process-wide lock, and starts from the initial state (maps registered
//! empty, global variables restored to the values they had before any run).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Mutex, MutexGuard};

/// A C program file and its eBPF objects.
#[derive(Debug)]
pub struct ProgramFile {
    /// The file's name without `.c`.
    pub name: &'static str,
    /// Its path from the repository root.
    pub source: &'static str,
    /// `(cpu, object)`: the default build first, then `v1` … `v4`.
    pub objects: [(&'static str, &'static [u8]); 5],
}

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

/// The C side (`examples/native/bpf_native.h`).
mod ffi {
    use super::*;

    #[repr(C)]
    pub struct Program {
        pub name: *const c_char,
        pub run: unsafe extern "C" fn(*mut u8, u64) -> u64,
        pub return_size: u32,
    }

    #[repr(C)]
    pub struct Global {
        pub name: *const c_char,
        pub section: *const c_char,
        pub offset: u64,
        pub address: *mut c_void,
        pub size: u64,
    }

    #[repr(C)]
    pub struct Object {
        pub name: *const c_char,
        pub programs: *const Program,
        pub program_count: u32,
        pub register_maps: unsafe extern "C" fn() -> c_int,
        pub globals: *const Global,
        pub global_count: u32,
    }

    #[repr(C)]
    pub struct MapInfo {
        pub name: *const c_char,
        pub map_type: u32,
        pub key_size: u32,
        pub value_size: u32,
        pub max_entries: u32,
    }

    unsafe extern "C" {
        pub static tessera_native_objects: [*const Object; FILE_COUNT];
        pub fn tessera_native_reset(clock_start: u64, clock_step: u64, seed: u32);
        pub fn tessera_native_map_count() -> u32;
        pub fn tessera_native_map_info(index: u32, info: *mut MapInfo) -> c_int;
        pub fn tessera_native_map_entry(index: u32, slot: u32, key: *mut *const u8, value: *mut *const u8) -> c_int;
        pub fn tessera_native_trace(len: *mut u64) -> *const u8;
        pub fn tessera_native_host_state(clock_now: *mut u64, random_state: *mut u32);
    }
}

/// The deterministic host both sides use: `bpf_ktime_get_ns` returns `clock_start`, then
/// advances by `clock_step` per call; `bpf_get_prandom_u32` is xorshift32 from `seed`
/// (13, 17, 5), returning the new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostConfig {
    pub clock_start: u64,
    pub clock_step: u64,
    pub seed: u32,
}

/// A map's definition and present elements, as the native helpers hold them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeMap {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// `(slot, key, value)` in slot order; `key` is `None` for arrays (the slot is the key).
    pub entries: Vec<(u32, Option<Vec<u8>>, Vec<u8>)>,
}

/// A global variable: where the eBPF object has it, and its native bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeGlobal {
    pub name: String,
    pub section: String,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// A program of a native program file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeProgram {
    pub name: &'static str,
    /// The size of its return type: r0's meaningful bytes.
    pub return_size: u32,
}

impl NativeProgram {
    /// The program's result in a 64-bit return register: the bytes of its return type,
    /// zero-extended (the rest is unspecified, in eBPF as natively).
    pub fn result(&self, r0: u64) -> u64 {
        match self.return_size {
            8.. => r0,
            size => r0 & ((1u64 << (8 * size)) - 1),
        }
    }
}

/// The initial bytes of each object's globals, taken before its first run (the writable ones
/// are restored from them at the start of every later session).
struct Snapshots(Vec<(usize, Vec<Vec<u8>>)>);

static STATE: Mutex<Snapshots> = Mutex::new(Snapshots(Vec::new()));

fn c_str(p: *const c_char) -> &'static str {
    // SAFETY: every string the C side hands out is a NUL-terminated literal of the
    // generated wrappers (static storage).
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("<not UTF-8>")
}

fn is_writable(section: &str) -> bool {
    !section.starts_with(".rodata")
}

/// Writes `bytes` (its initial value) back into writable global `global`.
fn restore(global: &ffi::Global, bytes: &[u8]) {
    assert_eq!(bytes.len() as u64, global.size);
    // SAFETY: `address` is the address of a C object of `size` bytes with static storage
    // (the wrapper took `&var` and asserted `sizeof(var) == size`) in a writable section;
    // the session lock is held and no native code runs, so nothing else accesses it.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), global.address.cast::<u8>(), bytes.len()) }
}

fn global_bytes(global: &ffi::Global) -> Vec<u8> {
    // SAFETY: `address` is the address of a C object of `size` bytes with static storage
    // (see `restore`), read while the session lock is held and no native code runs.
    unsafe { std::slice::from_raw_parts(global.address.cast::<u8>(), global.size as usize) }.to_vec()
}

/// One sequence of runs of a native program file, from its initial state.
pub struct Session {
    _lock: MutexGuard<'static, Snapshots>,
    object: &'static ffi::Object,
}

impl Session {
    /// Starts a session of program file `name` with `host`: maps registered empty, globals
    /// at their initial values, no trace.
    pub fn start(name: &str, host: HostConfig) -> Result<Session, String> {
        let index = PROGRAM_FILES.iter().position(|f| f.name == name).ok_or(format!("no program file `{name}`"))?;
        // A test that failed while holding the lock leaves nothing a reset does not undo.
        let mut state = STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: the registry is a constant array of pointers to the wrappers' static
        // descriptors, each valid for the life of the process.
        let object = unsafe { &*ffi::tessera_native_objects[index] };
        let globals = raw_globals(object);
        match state.0.iter().find(|(i, _)| *i == index) {
            Some((_, initial)) => {
                for (global, bytes) in globals.iter().zip(initial) {
                    if is_writable(c_str(global.section)) {
                        restore(global, bytes);
                    }
                }
            }
            None => state.0.push((index, globals.iter().map(global_bytes).collect())),
        }
        // SAFETY: plain C functions over the shim's own state; the lock is held.
        let registered = unsafe {
            ffi::tessera_native_reset(host.clock_start, host.clock_step, host.seed);
            (object.register_maps)()
        };
        if registered < 0 {
            return Err(format!("{name}: registering the maps failed ({registered})"));
        }
        Ok(Session { _lock: state, object })
    }

    /// The programs of the file.
    pub fn programs(&self) -> Vec<NativeProgram> {
        raw_programs(self.object)
            .iter()
            .map(|p| NativeProgram { name: c_str(p.name), return_size: p.return_size })
            .collect()
    }

    /// Runs `program` with `context` (its address and length are the arguments); the
    /// result is zero-extended from the program's return type.
    pub fn run(&mut self, program: &str, context: &mut [u8]) -> Result<u64, String> {
        let p = raw_programs(self.object)
            .iter()
            .find(|p| c_str(p.name) == program)
            .ok_or(format!("{}: no program `{program}`", c_str(self.object.name)))?;
        // An empty context is a null pointer, as tessera's r1 is then 0.
        let address = if context.is_empty() { std::ptr::null_mut() } else { context.as_mut_ptr() };
        // SAFETY: calling the natively compiled program (code is called): it gets a pointer
        // to `context.len()` writable bytes and their length, as the eBPF program does,
        // and reads or writes no further (the programs check their bounds; the tests run
        // them on the same inputs through tessera, which would report a fault).
        let r0 = unsafe { (p.run)(address, context.len() as u64) };
        Ok(NativeProgram { name: c_str(p.name), return_size: p.return_size }.result(r0))
    }

    /// The maps in registration order, with their present elements.
    pub fn maps(&self) -> Vec<NativeMap> {
        // SAFETY: the shim's accessors copy into the locals given; entry pointers point into
        // its map storage, valid until the next reset (the lock is held, and the bytes are
        // copied out before returning).
        unsafe {
            (0..ffi::tessera_native_map_count())
                .map(|index| {
                    let mut info = ffi::MapInfo {
                        name: std::ptr::null(),
                        map_type: 0,
                        key_size: 0,
                        value_size: 0,
                        max_entries: 0,
                    };
                    ffi::tessera_native_map_info(index, &mut info);
                    let mut entries = Vec::new();
                    for slot in 0..info.max_entries {
                        let (mut key, mut value) = (std::ptr::null(), std::ptr::null());
                        if ffi::tessera_native_map_entry(index, slot, &mut key, &mut value) == 1 {
                            let key = (!key.is_null())
                                .then(|| std::slice::from_raw_parts(key, info.key_size as usize).to_vec());
                            let value = std::slice::from_raw_parts(value, info.value_size as usize).to_vec();
                            entries.push((slot, key, value));
                        }
                    }
                    NativeMap {
                        name: c_str(info.name).to_string(),
                        map_type: info.map_type,
                        key_size: info.key_size,
                        value_size: info.value_size,
                        max_entries: info.max_entries,
                        entries,
                    }
                })
                .collect()
        }
    }

    /// Every global variable the eBPF object has, with its native bytes now.
    pub fn globals(&self) -> Vec<NativeGlobal> {
        raw_globals(self.object)
            .iter()
            .map(|g| NativeGlobal {
                name: c_str(g.name).to_string(),
                section: c_str(g.section).to_string(),
                offset: g.offset,
                bytes: global_bytes(g),
            })
            .collect()
    }

    /// The `bpf_trace_printk` messages so far.
    pub fn trace(&self) -> Vec<Vec<u8>> {
        let mut len = 0u64;
        // SAFETY: the shim returns its trace buffer and the bytes used in it.
        let mut records = unsafe { std::slice::from_raw_parts(ffi::tessera_native_trace(&mut len), len as usize) };
        let mut messages = Vec::new();
        while let Some((head, rest)) = records.split_first_chunk::<4>() {
            let (message, rest) = rest.split_at(u32::from_le_bytes(*head) as usize);
            messages.push(message.to_vec());
            records = rest;
        }
        messages
    }

    /// The clock's next reading and the random state.
    pub fn host_state(&self) -> (u64, u32) {
        let (mut now, mut state) = (0, 0);
        // SAFETY: writes the two locals.
        unsafe { ffi::tessera_native_host_state(&mut now, &mut state) };
        (now, state)
    }
}

fn raw_programs(object: &'static ffi::Object) -> &'static [ffi::Program] {
    if object.program_count == 0 {
        return &[];
    }
    // SAFETY: the wrapper's static array of `program_count` descriptors.
    unsafe { std::slice::from_raw_parts(object.programs, object.program_count as usize) }
}

fn raw_globals(object: &'static ffi::Object) -> &'static [ffi::Global] {
    if object.global_count == 0 {
        return &[];
    }
    // SAFETY: the wrapper's static array of `global_count` descriptors.
    unsafe { std::slice::from_raw_parts(object.globals, object.global_count as usize) }
}
