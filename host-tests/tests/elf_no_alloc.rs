//! The allocation-free path really is: parsing, listing, linking into caller buffers,
//! reading maps, creating them in caller storage and using them allocate nothing. (The
//! `object` crate still links the `alloc` crate, so an image needs an allocator to exist.)
//! This binary's allocator counts the allocations of the thread that arms it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tessera::ebpf::Program;
use tessera::ebpf::elf::{Function, Object, Select};
use tessera::ebpf::maps::AlignedBytes;

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u32> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the thread-locals
// are const-initialised `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u32 {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    COUNT.with(Cell::get)
}

const OBJECTS: [&[u8]; 5] = [
    include_bytes!("../../examples/packet_filter.o"),
    include_bytes!("../../examples/counter.o"),
    include_bytes!("../../examples/rate_limit.o"),
    include_bytes!("../../examples/globals.o"),
    include_bytes!("../../examples/counter_legacy.o"),
];

#[test]
fn loading_into_caller_buffers_does_not_allocate() {
    // The check itself works: a Vec allocates.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))), 1);
    let mut linked_insns = 0;
    for bytes in OBJECTS {
        let count = allocations(|| {
            let object = Object::parse(bytes).unwrap();
            let mut code = [0u8; 2048];
            let mut functions = [Function::default(); 8];
            let mut storage = AlignedBytes::<2048>::new();
            for program in object.programs() {
                let linked = object.load_into(Select::Function(program.name), &mut code, &mut functions).unwrap();
                let value_size = |i: u32| object.map(i).map(|m| m.def.value_size());
                let mut scratch = [0u64; 64];
                let validated = Program::with_maps_in(linked.code, |_| true, value_size, &mut scratch).unwrap();
                linked_insns += validated.len();
            }
            for map in object.maps() {
                let mut created = map.create_in(storage.as_mut_slice()).unwrap();
                let key = [0u8; 4];
                let value = [1u8; 8];
                if map.def.value_size() == 8 && map.def.key_size() == 4 {
                    created.update(&key, &value, 0).unwrap();
                    assert!(created.lookup(&key).is_some());
                }
            }
            assert!(object.select(Select::Function("missing")).is_err());
        });
        assert_eq!(count, 0);
    }
    assert_eq!(linked_insns, 109 + 58 + 48 + 72 + 70 + 64);
}
